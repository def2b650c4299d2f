listen = "this file is ignored: in a subdirectory"
