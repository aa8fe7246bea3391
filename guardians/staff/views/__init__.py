"""Views of the staff workspace, one module per topic (``common`` holds the decorator and
the object look-ups every topic shares)."""
