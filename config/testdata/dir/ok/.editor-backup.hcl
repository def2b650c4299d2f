listen = "this file is ignored: hidden"
