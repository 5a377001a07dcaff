from softdistill.cli import entry

entry()
