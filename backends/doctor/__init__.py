"""`netjail doctor`: what this machine can do, and what else shares its firewall."""
