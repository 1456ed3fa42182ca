"""Models behind one small interface: text generation engines and embedding engines."""
