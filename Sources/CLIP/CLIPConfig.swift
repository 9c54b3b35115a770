import Tensor

/// Architecture of one transformer tower.
public struct TowerConfig: Sendable, Equatable, Codable {
    public var width: Int
    public var layers: Int
    public var heads: Int
    public var mlpWidth: Int

    public init(width: Int, layers: Int, heads: Int, mlpWidth: Int) {
        self.width = width
        self.layers = layers
        self.heads = heads
        self.mlpWidth = mlpWidth
    }
}

/// The architecture of a CLIP model with a ViT image tower (OpenAI / open_clip / HF layout).
public struct CLIPConfig: Sendable, Equatable, Codable {
    public var embedDim: Int
    public var imageSize: Int
    public var patchSize: Int
    public var vision: TowerConfig
    public var contextLength: Int
    public var vocabSize: Int
    public var text: TowerConfig
    public var activation: Activation
    public var layerNormEps: Float
    /// Per-channel normalisation of the image input (RGB).
    public var imageMean: [Float]
    public var imageStd: [Float]

    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    public init(embedDim: Int, imageSize: Int, patchSize: Int, vision: TowerConfig,
                contextLength: Int = 77, vocabSize: Int = 49408, text: TowerConfig,
                activation: Activation, layerNormEps: Float = 1e-5,
                imageMean: [Float] = CLIPConfig.openAIMean, imageStd: [Float] = CLIPConfig.openAIStd) {
        self.embedDim = embedDim
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.vision = vision
        self.contextLength = contextLength
        self.vocabSize = vocabSize
        self.text = text
        self.activation = activation
        self.layerNormEps = layerNormEps
        self.imageMean = imageMean
        self.imageStd = imageStd
    }

    public var gridSize: Int { imageSize / patchSize }
    public var visionTokens: Int { gridSize * gridSize + 1 }

    /// Named architectures for benchmarks and random-weight models (OpenAI shapes, QuickGELU).
    public static func named(_ name: String) -> CLIPConfig? {
        switch name.lowercased() {
        case "vit-b-32", "vit-b/32":
            return .init(embedDim: 512, imageSize: 224, patchSize: 32,
                         vision: .init(width: 768, layers: 12, heads: 12, mlpWidth: 3072),
                         text: .init(width: 512, layers: 12, heads: 8, mlpWidth: 2048), activation: .quickGELU)
        case "vit-b-16", "vit-b/16":
            return .init(embedDim: 512, imageSize: 224, patchSize: 16,
                         vision: .init(width: 768, layers: 12, heads: 12, mlpWidth: 3072),
                         text: .init(width: 512, layers: 12, heads: 8, mlpWidth: 2048), activation: .quickGELU)
        case "vit-l-14", "vit-l/14":
            return .init(embedDim: 768, imageSize: 224, patchSize: 14,
                         vision: .init(width: 1024, layers: 24, heads: 16, mlpWidth: 4096),
                         text: .init(width: 768, layers: 12, heads: 12, mlpWidth: 3072), activation: .quickGELU)
        case "vit-l-14-336", "vit-l/14@336px", "vit-l-14@336":
            return .init(embedDim: 768, imageSize: 336, patchSize: 14,
                         vision: .init(width: 1024, layers: 24, heads: 16, mlpWidth: 4096),
                         text: .init(width: 768, layers: 12, heads: 12, mlpWidth: 3072), activation: .quickGELU)
        default:
            return nil
        }
    }

    public static let namedArchitectures = ["ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336"]

    /// Upper bounds of every architecture number a checkpoint may declare. The largest real
    /// CLIP, ViT-bigG/14 (vision 1664 wide x 48 layers, MLP 8192, text 1280 x 32, 2.5 G
    /// parameters), fits with a wide margin; anything beyond is refused before memory is sized.
    public enum Limits {
        public static let maxWidth = 16_384
        public static let maxLayers = 256
        public static let maxHeads = 256
        public static let maxMLPWidth = 65_536
        public static let maxEmbedDim = 16_384
        public static let maxImageSize = 2_048
        /// Most image patches (grid x grid): 1024, as at 448 px with 14 px patches, times 4.
        public static let maxPatches = 4_096
        public static let maxContextLength = 4_096
        public static let maxVocabSize = 1_048_576
        /// Most parameters of a model (16 G, 64 GB as Float32).
        public static let maxParameters = 16 << 30
    }

    /// Checks the combination is one the engine can run and every number is within `Limits`.
    public func validate() throws {
        func fail(_ m: String) -> CLIPError { CLIPError(.unsupportedArchitecture, m) }
        func check(_ name: String, _ value: Int, _ range: ClosedRange<Int>) throws {
            guard range.contains(value) else { throw fail("\(name) \(value) is outside \(range.lowerBound)...\(range.upperBound)") }
        }
        try check("embed_dim", embedDim, 1...Limits.maxEmbedDim)
        try check("image_size", imageSize, 1...Limits.maxImageSize)
        try check("patch_size", patchSize, 1...imageSize)
        guard imageSize % patchSize == 0 else {
            throw fail("image size \(imageSize) is not a multiple of patch size \(patchSize)")
        }
        try check("patches per image", gridSize * gridSize, 1...Limits.maxPatches)
        for (name, tower) in [("vision", vision), ("text", text)] {
            try check("\(name) width", tower.width, 1...Limits.maxWidth)
            try check("\(name) layers", tower.layers, 0...Limits.maxLayers)
            try check("\(name) heads", tower.heads, 1...min(Limits.maxHeads, tower.width))
            try check("\(name) MLP width", tower.mlpWidth, 1...Limits.maxMLPWidth)
            guard tower.width % tower.heads == 0 else {
                throw fail("\(name) width \(tower.width) is not divisible by \(tower.heads) heads")
            }
        }
        try check("context length", contextLength, 1...Limits.maxContextLength)
        try check("vocabulary size", vocabSize, 1...Limits.maxVocabSize)
        guard layerNormEps.isFinite, layerNormEps > 0, layerNormEps < 1 else {
            throw fail("layer norm epsilon \(layerNormEps) is not in (0, 1)")
        }
        guard imageMean.count == 3, imageStd.count == 3 else { throw fail("image mean/std need 3 values") }
        guard imageMean.allSatisfy(\.isFinite), imageStd.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw fail("image mean/std must be finite with a positive std")
        }
        // Every number is bounded above, so this sum cannot overflow.
        let total = parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        guard total <= Limits.maxParameters else {
            throw fail("the architecture has \(total) parameters, more than \(Limits.maxParameters)")
        }
    }

    /// Every parameter of the model in OpenAI/open_clip naming, with its shape, in a fixed order.
    public var parameterShapes: [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        func block(_ prefix: String, _ t: TowerConfig) {
            let c = t.width
            out += [
                ("\(prefix).ln_1.weight", [c]), ("\(prefix).ln_1.bias", [c]),
                ("\(prefix).attn.in_proj_weight", [3 * c, c]), ("\(prefix).attn.in_proj_bias", [3 * c]),
                ("\(prefix).attn.out_proj.weight", [c, c]), ("\(prefix).attn.out_proj.bias", [c]),
                ("\(prefix).ln_2.weight", [c]), ("\(prefix).ln_2.bias", [c]),
                ("\(prefix).mlp.c_fc.weight", [t.mlpWidth, c]), ("\(prefix).mlp.c_fc.bias", [t.mlpWidth]),
                ("\(prefix).mlp.c_proj.weight", [c, t.mlpWidth]), ("\(prefix).mlp.c_proj.bias", [c]),
            ]
        }
        let vw = vision.width
        out += [
            ("visual.conv1.weight", [vw, 3, patchSize, patchSize]),
            ("visual.class_embedding", [vw]),
            ("visual.positional_embedding", [visionTokens, vw]),
            ("visual.ln_pre.weight", [vw]), ("visual.ln_pre.bias", [vw]),
        ]
        for i in 0..<vision.layers { block("visual.transformer.resblocks.\(i)", vision) }
        out += [
            ("visual.ln_post.weight", [vw]), ("visual.ln_post.bias", [vw]),
            ("visual.proj", [vw, embedDim]),
        ]
        let tw = text.width
        out += [
            ("token_embedding.weight", [vocabSize, tw]),
            ("positional_embedding", [contextLength, tw]),
        ]
        for i in 0..<text.layers { block("transformer.resblocks.\(i)", text) }
        out += [
            ("ln_final.weight", [tw]), ("ln_final.bias", [tw]),
            ("text_projection", [tw, embedDim]),
            ("logit_scale", []),
        ]
        return out
    }

    /// Approximate multiply-adds x2 of one image through the vision tower (the benchmark's unit).
    public var imageFLOPs: Double {
        let t = Double(visionTokens), c = Double(vision.width), m = Double(vision.mlpWidth)
        let patch = Double(gridSize * gridSize) * c * Double(3 * patchSize * patchSize)
        let perLayer = t * (4 * c * c + 2 * c * m) + 2 * t * t * c
        return 2 * (patch + Double(vision.layers) * perLayer + c * Double(embedDim))
    }

    /// The same for one caption of `tokens` tokens through the text tower.
    public func textFLOPs(tokens: Int) -> Double {
        let t = Double(tokens), c = Double(text.width), m = Double(text.mlpWidth)
        let perLayer = t * (4 * c * c + 2 * c * m) + 2 * t * t * c
        return 2 * (Double(text.layers) * perLayer + c * Double(embedDim))
    }
}
