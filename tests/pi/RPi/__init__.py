"""RPi for the real server process in tests: see GPIO.py."""
