"""Node providers: what makes a pool's nodes exist (local agent processes; more later)."""
