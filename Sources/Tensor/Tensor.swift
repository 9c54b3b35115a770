// Placeholder replaced by the engine.
public enum TensorPlaceholder {}
