"""The files users feed the program and the files it writes: the one reading layer, exports, MiJaBench-Align, the paper's figures."""
