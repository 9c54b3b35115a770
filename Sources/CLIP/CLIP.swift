import Tensor
public enum CLIPPlaceholder {}
