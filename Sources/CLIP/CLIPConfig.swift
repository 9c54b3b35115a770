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

    /// Checks the combination is one the engine can run.
    public func validate() throws {
        func fail(_ m: String) -> CLIPError { CLIPError(.unsupportedArchitecture, m) }
        guard embedDim > 0, imageSize > 0, patchSize > 0, imageSize % patchSize == 0 else {
            throw fail("image size \(imageSize) is not a multiple of patch size \(patchSize)")
        }
        for (name, tower) in [("vision", vision), ("text", text)] {
            guard tower.width > 0, tower.layers >= 0, tower.heads > 0, tower.mlpWidth > 0,
                  tower.width % tower.heads == 0 else {
                throw fail("\(name) width \(tower.width) is not divisible by \(tower.heads) heads")
            }
        }
        guard contextLength > 0, vocabSize > 0 else { throw fail("invalid text context or vocabulary") }
        guard imageMean.count == 3, imageStd.count == 3 else { throw fail("image mean/std need 3 values") }
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
