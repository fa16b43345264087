"""Shoal's fault experiments: longer than tests, each prints figures against its target.

    python3 dev.py chaos                      # every experiment
    python3 dev.py chaos --only agent-kill    # some of them
"""
