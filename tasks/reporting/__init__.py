"""The report (report stage): its figures, and its figures said in words."""
