from snoopd.lab.commands import lab_app

lab_app(prog_name="snoopd lab")
