"""Result aggregation and report formats. Works on RunResult dicts, so it serves local and distributed runs."""
