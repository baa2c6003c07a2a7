"""Dashboard pages, one module per page family. Every page needs a logged-in user with the
view permission; actions need the operate or approve permission
(``workflows_app.permissions``) and go through ``workflows_app.services``."""
