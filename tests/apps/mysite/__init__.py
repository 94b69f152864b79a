"""A package laid out as Django's startproject lays one out: mysite/wsgi.py defines `application`."""
