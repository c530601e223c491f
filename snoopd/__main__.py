from snoopd.cli import main

main()
