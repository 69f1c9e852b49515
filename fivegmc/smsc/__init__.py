"""The SMSC stub node (SMPP v3.4 server, MO injection, handset inbox) and the ESME client."""
