"""One app per workbook: each composes the shared page frame, controls and panels."""
