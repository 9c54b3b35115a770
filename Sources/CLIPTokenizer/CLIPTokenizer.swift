public enum CLIPTokenizerPlaceholder {}
