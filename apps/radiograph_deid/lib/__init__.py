"""MONAI Label glue for radiograph-deid: every decision is made by the radiograph_deid library."""
