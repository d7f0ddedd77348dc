namespace rbdcsi {}
