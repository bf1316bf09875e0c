"""IR text -> dataflow graphs: the grammar's parser, syntax diagnostics, lowering."""
