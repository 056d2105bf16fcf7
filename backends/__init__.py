"""The engine: inventory, firewall, jail strategies, state. Never imports textual."""
