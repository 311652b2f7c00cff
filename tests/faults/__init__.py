"""Fault tests: bad inputs, injected faults and the runs that must survive them (marked ``faults``)."""
