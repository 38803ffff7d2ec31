"""Pure rule modules, one per programme family. No I/O: household + policy + date in, results out."""
