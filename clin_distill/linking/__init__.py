"""Entity linking for the packaged model: the `clin_linker` component and the table it carries."""
