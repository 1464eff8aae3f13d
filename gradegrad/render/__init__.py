"""Writers: each turns a `Report` into something a person or a machine reads. They compute nothing."""
