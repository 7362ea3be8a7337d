"""Many runs and the job of one: sweeps, grid, sensitivity, search, calibration and validation."""
