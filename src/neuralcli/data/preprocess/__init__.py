"""Signal processing shared by the paired datasets: LFP filters, spike binning, kinematics."""
