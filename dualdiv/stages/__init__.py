"""Stage entry points on files, one per Snakemake rule, shared by the CLI and workflow/scripts."""
