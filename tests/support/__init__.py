"""Helpers several test modules share: the proxies users put in front of prefork."""
