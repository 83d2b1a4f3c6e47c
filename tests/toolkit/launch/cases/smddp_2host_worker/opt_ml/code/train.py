# the user program: the probe never runs it
