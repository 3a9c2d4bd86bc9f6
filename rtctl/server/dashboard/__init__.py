"""The dashboard's static files (served by rtctl.server.admin_dashboard)."""
