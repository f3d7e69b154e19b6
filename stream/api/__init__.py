"""The people-facing API and pages (``engagement api``): routes, sign-in and access by role."""
