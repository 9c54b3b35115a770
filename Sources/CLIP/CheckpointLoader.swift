import Foundation
import Tensor

/// A model's weights and architecture read from disk.
public struct LoadedCheckpoint: @unchecked Sendable {
    public let config: CLIPConfig
    public let parameters: ParameterStore
    /// "huggingface", "openai-safetensors" or "openai-torch".
    public let format: String
    public let path: String
    public let metadata: [String: String]
}

/// Loads CLIP checkpoints in the three layouts users bring:
/// a Hugging Face `CLIPModel` directory (`config.json` + `model.safetensors`, possibly sharded),
/// an OpenAI/open_clip state dict as `.safetensors`, or the same as a `torch.save` zip (`.pt`/`.bin`).
/// Every expected tensor is checked for presence and shape before any is used.
public enum CheckpointLoader {
    public static func load(path: String) throws -> LoadedCheckpoint {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CLIPError(.fileNotFound, "\(path): no such file or directory")
        }
        if isDir.boolValue { return try loadDirectory(url) }
        let (tensors, metadata) = try readTensors(url)
        let dir = url.deletingLastPathComponent()
        if tensors.keys.contains(where: { $0.hasPrefix("vision_model.") || $0.hasPrefix("text_model.") }) {
            let configURL = dir.appendingPathComponent("config.json")
            guard FileManager.default.fileExists(atPath: configURL.path) else {
                throw CLIPError(.unsupportedFormat, "\(path): Hugging Face tensor names but no config.json beside it")
            }
            return try assemble(config: try hfConfig(configURL, preprocessor: dir.appendingPathComponent("preprocessor_config.json")),
                                tensors: tensors, naming: .huggingFace, format: "huggingface", path: path, metadata: metadata,
                                fileBytes: fileSize(url))
        }
        let config: CLIPConfig
        if let embedded = metadata["clipd.config"] {
            // Written by clipd: the architecture travels inside the file.
            guard let decoded = try? JSONDecoder().decode(CLIPConfig.self, from: Data(embedded.utf8)) else {
                throw CLIPError(.corrupt, "\(path): unreadable clipd.config metadata")
            }
            do { try decoded.validate() } catch let e as CLIPError {
                throw CLIPError(e.kind, "\(path): clipd.config metadata: \(e.message)")
            }
            config = decoded
        } else {
            config = try openAIConfig(tensors: tensors, configURL: dir.appendingPathComponent("open_clip_config.json"), file: path)
        }
        return try assemble(config: config, tensors: tensors, naming: .openAI,
                            format: url.pathExtension == "safetensors" ? "openai-safetensors" : "openai-torch",
                            path: path, metadata: metadata, fileBytes: fileSize(url))
    }

    static func fileSize(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    static func readTensors(_ url: URL) throws -> ([String: CheckpointTensor], [String: String]) {
        let ext = url.pathExtension.lowercased()
        if ext == "safetensors" {
            let r = try SafeTensors.read(url)
            return (r.tensors, r.metadata)
        }
        if ext == "pt" || ext == "bin" || ext == "pth" {
            return (try TorchCheckpoint.read(url), [:])
        }
        // Sniff: zip magic or safetensors.
        guard let h = FileHandle(forReadingAtPath: url.path) else {
            throw CLIPError(.unreadable, "\(url.path): cannot open")
        }
        let head = h.readData(ofLength: 4)
        try? h.close()
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return (try TorchCheckpoint.read(url), [:]) }
        let r = try SafeTensors.read(url)
        return (r.tensors, r.metadata)
    }

    static func loadDirectory(_ dir: URL) throws -> LoadedCheckpoint {
        let fm = FileManager.default
        let config = dir.appendingPathComponent("config.json")
        if fm.fileExists(atPath: config.path) {
            let cfg = try hfConfig(config, preprocessor: dir.appendingPathComponent("preprocessor_config.json"))
            var tensors: [String: CheckpointTensor] = [:]
            var metadata: [String: String] = [:]
            var fileBytes = 0
            let index = dir.appendingPathComponent("model.safetensors.index.json")
            if fm.fileExists(atPath: index.path) {
                guard let json = try? JSONSerialization.jsonObject(with: Data(contentsOf: index)) as? [String: Any],
                      let map = json["weight_map"] as? [String: String] else {
                    throw CLIPError(.corrupt, "\(index.path): not a valid shard index (no weight_map)")
                }
                for shard in Set(map.values).sorted() {
                    let (t, m) = try readTensors(dir.appendingPathComponent(shard))
                    fileBytes += fileSize(dir.appendingPathComponent(shard))
                    tensors.merge(t) { a, _ in a }
                    metadata.merge(m) { a, _ in a }
                }
                for (name, shard) in map where tensors[name] == nil {
                    throw CLIPError(.missingTensor, "\(dir.appendingPathComponent(shard).path): tensor \(name) listed in the index is missing")
                }
            } else if let file = ["model.safetensors", "pytorch_model.bin"].map({ dir.appendingPathComponent($0) }).first(where: { fm.fileExists(atPath: $0.path) }) {
                (tensors, metadata) = try readTensors(file)
                fileBytes = fileSize(file)
            } else {
                throw CLIPError(.fileNotFound, "\(dir.path): config.json but no model.safetensors, model.safetensors.index.json or pytorch_model.bin")
            }
            return try assemble(config: cfg, tensors: tensors, naming: .huggingFace, format: "huggingface", path: dir.path,
                                metadata: metadata, fileBytes: fileBytes)
        }
        // An open_clip style directory: one weights file next to open_clip_config.json.
        let files = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
        let weights = files.filter { ["safetensors", "bin", "pt", "pth"].contains(URL(fileURLWithPath: $0).pathExtension) }.sorted()
        guard weights.count == 1 else {
            throw CLIPError(.unsupportedFormat, "\(dir.path): expected config.json (Hugging Face) or exactly one .safetensors/.pt/.bin file, found \(weights)")
        }
        return try load(path: dir.appendingPathComponent(weights[0]).path)
    }

    // MARK: configs

    static func jsonObject(_ url: URL) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CLIPError(.unreadable, "\(url.path): cannot read")
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CLIPError(.corrupt, "\(url.path): not a JSON object")
        }
        return obj
    }

    static func activation(_ name: String?, file: String) throws -> Activation {
        switch name ?? "quick_gelu" {
        case "quick_gelu": return .quickGELU
        case "gelu": return .gelu
        case let other: throw CLIPError(.unsupportedArchitecture, "\(file): activation \(other) is not supported (quick_gelu, gelu)")
        }
    }

    /// Reads a Hugging Face `CLIPConfig`; absent fields take transformers' CLIP defaults.
    static func hfConfig(_ url: URL, preprocessor: URL) throws -> CLIPConfig {
        let json = try jsonObject(url)
        if let type = json["model_type"] as? String, type != "clip" {
            throw CLIPError(.unsupportedArchitecture, "\(url.path): model_type \(type) is not clip")
        }
        let v = json["vision_config"] as? [String: Any] ?? [:]
        let t = json["text_config"] as? [String: Any] ?? [:]
        func int(_ d: [String: Any], _ k: String, _ def: Int) throws -> Int {
            guard let value = d[k], !(value is NSNull) else { return def }
            guard let i = CheckpointLimits.integer(value) else {
                throw CLIPError(.unsupportedArchitecture, "\(url.path): \(k) is \(value), not an integer in range")
            }
            return i
        }
        let vAct = try activation(v["hidden_act"] as? String, file: url.path)
        let tAct = try activation(t["hidden_act"] as? String, file: url.path)
        guard vAct == tAct else {
            throw CLIPError(.unsupportedArchitecture, "\(url.path): different activations per tower are not supported")
        }
        let eps = Float((v["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-5)
        var mean = CLIPConfig.openAIMean, std = CLIPConfig.openAIStd
        if let pre = try? jsonObject(preprocessor) {
            if let m = pre["image_mean"] as? [NSNumber], m.count == 3 { mean = m.map { $0.floatValue } }
            if let s = pre["image_std"] as? [NSNumber], s.count == 3 { std = s.map { $0.floatValue } }
        }
        let config = CLIPConfig(
            embedDim: try int(json, "projection_dim", 512),
            imageSize: try int(v, "image_size", 224), patchSize: try int(v, "patch_size", 32),
            vision: .init(width: try int(v, "hidden_size", 768), layers: try int(v, "num_hidden_layers", 12),
                          heads: try int(v, "num_attention_heads", 12), mlpWidth: try int(v, "intermediate_size", 3072)),
            contextLength: try int(t, "max_position_embeddings", 77), vocabSize: try int(t, "vocab_size", 49408),
            text: .init(width: try int(t, "hidden_size", 512), layers: try int(t, "num_hidden_layers", 12),
                        heads: try int(t, "num_attention_heads", 8), mlpWidth: try int(t, "intermediate_size", 2048)),
            activation: vAct, layerNormEps: eps, imageMean: mean, imageStd: std)
        do { try config.validate() } catch let e as CLIPError { throw CLIPError(e.kind, "\(url.path): \(e.message)") }
        return config
    }

    /// Architecture of an OpenAI/open_clip state dict: from `open_clip_config.json` when present,
    /// otherwise inferred from tensor shapes as OpenAI's `build_model` does (heads = width / 64,
    /// QuickGELU).
    static func openAIConfig(tensors: [String: CheckpointTensor], configURL: URL, file: String) throws -> CLIPConfig {
        func shape(_ name: String) throws -> [Int] {
            guard let t = tensors[name] else {
                if name == "visual.conv1.weight", tensors["visual.layer1.0.conv1.weight"] != nil {
                    throw CLIPError(.unsupportedArchitecture, "\(file): ResNet image towers are not supported, only ViT")
                }
                throw CLIPError(.missingTensor, "\(file): missing tensor \(name)")
            }
            return t.shape
        }
        func layers(_ prefix: String) -> Int {
            var n = 0
            while tensors["\(prefix).\(n).attn.in_proj_weight"] != nil { n += 1 }
            return n
        }
        let conv = try shape("visual.conv1.weight")
        let visualPos = try shape("visual.positional_embedding")
        let textProj = try shape("text_projection")
        let lnFinal = try shape("ln_final.weight")
        let tokenEmb = try shape("token_embedding.weight")
        let textPos = try shape("positional_embedding")
        guard conv.count == 4, visualPos.count == 2, textProj.count == 2, tokenEmb.count == 2, textPos.count == 2, lnFinal.count == 1 else {
            throw CLIPError(.shapeMismatch, "\(file): unexpected tensor ranks for a CLIP ViT state dict")
        }
        // Checked: these numbers come from the file and are validated against the limits below.
        let tokens = visualPos[0] - 1
        guard tokens >= 1, tokens <= CLIPConfig.Limits.maxPatches, conv[3] >= 1, conv[3] <= CLIPConfig.Limits.maxImageSize else {
            throw CLIPError(.unsupportedArchitecture, "\(file): visual.positional_embedding \(visualPos) and visual.conv1.weight \(conv) do not describe a supported ViT")
        }
        let grid = Int(Double(tokens).squareRoot().rounded())
        let vWidth = conv[0], tWidth = lnFinal[0]
        let vMLP = tensors["visual.transformer.resblocks.0.mlp.c_fc.weight"]?.shape.first ?? CheckpointLimits.multiply(4, vWidth) ?? 0
        let tMLP = tensors["transformer.resblocks.0.mlp.c_fc.weight"]?.shape.first ?? CheckpointLimits.multiply(4, tWidth) ?? 0
        var config = CLIPConfig(
            embedDim: textProj[1], imageSize: conv[3] * grid, patchSize: conv[3],
            vision: .init(width: vWidth, layers: layers("visual.transformer.resblocks"), heads: max(1, vWidth / 64), mlpWidth: vMLP),
            contextLength: textPos[0], vocabSize: tokenEmb[0],
            text: .init(width: tWidth, layers: layers("transformer.resblocks"), heads: max(1, tWidth / 64), mlpWidth: tMLP),
            activation: .quickGELU)
        if FileManager.default.fileExists(atPath: configURL.path) {
            let json = try jsonObject(configURL)
            let cfg = json["model_cfg"] as? [String: Any] ?? json
            let v = cfg["vision_cfg"] as? [String: Any] ?? [:]
            let t = cfg["text_cfg"] as? [String: Any] ?? [:]
            for unsupported in ["timm_model_name", "attentional_pool", "no_ln_pre", "final_ln_after_pool", "input_patchnorm"] {
                if let val = v[unsupported], !(val is NSNull), (val as? Bool) != false {
                    throw CLIPError(.unsupportedArchitecture, "\(configURL.path): vision_cfg.\(unsupported) is not supported")
                }
            }
            if let pool = v["pool_type"] as? String, pool != "tok" {
                throw CLIPError(.unsupportedArchitecture, "\(configURL.path): vision pool_type \(pool) is not supported (tok)")
            }
            if let pool = t["pool_type"] as? String, pool != "argmax" {
                throw CLIPError(.unsupportedArchitecture, "\(configURL.path): text pool_type \(pool) is not supported (argmax)")
            }
            if t["hf_model_name"] is String {
                throw CLIPError(.unsupportedArchitecture, "\(configURL.path): Hugging Face text towers are not supported")
            }
            if v["layers"] is [Any] {
                throw CLIPError(.unsupportedArchitecture, "\(configURL.path): ResNet image towers are not supported, only ViT")
            }
            func bad(_ k: String, _ value: Any) -> CLIPError {
                CLIPError(.unsupportedArchitecture, "\(configURL.path): \(k) is \(value), not a number in range")
            }
            func num(_ d: [String: Any], _ k: String) throws -> Double? {
                guard let value = d[k], !(value is NSNull) else { return nil }
                guard let x = (value as? NSNumber)?.doubleValue, x.isFinite, abs(x) <= 1e9 else { throw bad(k, value) }
                return x
            }
            func int(_ d: [String: Any], _ k: String) throws -> Int? {
                guard let value = d[k], !(value is NSNull) else { return nil }
                guard let i = CheckpointLimits.integer(value), abs(i) <= 1_000_000_000 else { throw bad(k, value) }
                return i
            }
            /// `width * ratio`, bounded (ratios come from the file).
            func scaled(_ width: Int, _ ratio: Double?, _ k: String) throws -> Int {
                let r = ratio ?? 4
                guard r > 0, r <= 64 else { throw bad(k, r) }
                return Int(Double(width) * r)
            }
            if let e = try int(cfg, "embed_dim") { config.embedDim = e }
            if let s = try int(v, "image_size") { config.imageSize = s }
            if let p = try int(v, "patch_size") { config.patchSize = p }
            if let w = try int(v, "width") { config.vision.width = w }
            if let l = try int(v, "layers") { config.vision.layers = l }
            let headWidth = try int(v, "head_width") ?? 64
            guard headWidth > 0 else { throw bad("head_width", headWidth) }
            config.vision.heads = config.vision.width / headWidth
            config.vision.mlpWidth = try scaled(config.vision.width, try num(v, "mlp_ratio"), "mlp_ratio")
            if let c = try int(t, "context_length") { config.contextLength = c }
            if let vs = try int(t, "vocab_size") { config.vocabSize = vs }
            if let w = try int(t, "width") { config.text.width = w }
            if let l = try int(t, "layers") { config.text.layers = l }
            if let h = try int(t, "heads") { config.text.heads = h }
            config.text.mlpWidth = try scaled(config.text.width, try num(t, "mlp_ratio"), "mlp_ratio")
            config.activation = (cfg["quick_gelu"] as? Bool ?? false) ? .quickGELU : .gelu
            if let pre = cfg["preprocess_cfg"] as? [String: Any] ?? json["preprocess_cfg"] as? [String: Any] {
                if let m = pre["mean"] as? [NSNumber], m.count == 3 { config.imageMean = m.map { $0.floatValue } }
                if let s = pre["std"] as? [NSNumber], s.count == 3 { config.imageStd = s.map { $0.floatValue } }
            }
        }
        do { try config.validate() } catch let e as CLIPError { throw CLIPError(e.kind, "\(file): \(e.message)") }
        return config
    }

    // MARK: tensor names

    enum Naming { case openAI, huggingFace }

    enum Source {
        case direct(String)
        case transposed(String)
        case concat([String])
    }

    /// Where the checkpoint keeps the tensor clipd calls `name` (OpenAI naming).
    static func source(of name: String, naming: Naming) -> Source {
        guard naming == .huggingFace else { return .direct(name) }
        func block(_ rest: Substring, _ prefix: String) -> Source {
            let parts = rest.split(separator: ".", maxSplits: 1)
            let layer = parts[0], field = String(parts[1])
            let base = "\(prefix).encoder.layers.\(layer)"
            switch field {
            case "attn.in_proj_weight": return .concat(["q", "k", "v"].map { "\(base).self_attn.\($0)_proj.weight" })
            case "attn.in_proj_bias": return .concat(["q", "k", "v"].map { "\(base).self_attn.\($0)_proj.bias" })
            default:
                let mapped = field
                    .replacingOccurrences(of: "attn.out_proj", with: "self_attn.out_proj")
                    .replacingOccurrences(of: "ln_1", with: "layer_norm1")
                    .replacingOccurrences(of: "ln_2", with: "layer_norm2")
                    .replacingOccurrences(of: "mlp.c_fc", with: "mlp.fc1")
                    .replacingOccurrences(of: "mlp.c_proj", with: "mlp.fc2")
                return .direct("\(base).\(mapped)")
            }
        }
        if name.hasPrefix("visual.transformer.resblocks.") {
            return block(name.dropFirst("visual.transformer.resblocks.".count), "vision_model")
        }
        if name.hasPrefix("transformer.resblocks.") {
            return block(name.dropFirst("transformer.resblocks.".count), "text_model")
        }
        switch name {
        case "visual.conv1.weight": return .direct("vision_model.embeddings.patch_embedding.weight")
        case "visual.class_embedding": return .direct("vision_model.embeddings.class_embedding")
        case "visual.positional_embedding": return .direct("vision_model.embeddings.position_embedding.weight")
        case "visual.ln_pre.weight": return .direct("vision_model.pre_layrnorm.weight")
        case "visual.ln_pre.bias": return .direct("vision_model.pre_layrnorm.bias")
        case "visual.ln_post.weight": return .direct("vision_model.post_layernorm.weight")
        case "visual.ln_post.bias": return .direct("vision_model.post_layernorm.bias")
        case "visual.proj": return .transposed("visual_projection.weight")
        case "token_embedding.weight": return .direct("text_model.embeddings.token_embedding.weight")
        case "positional_embedding": return .direct("text_model.embeddings.position_embedding.weight")
        case "ln_final.weight": return .direct("text_model.final_layer_norm.weight")
        case "ln_final.bias": return .direct("text_model.final_layer_norm.bias")
        case "text_projection": return .transposed("text_projection.weight")
        default: return .direct(name)
        }
    }

    /// Buffers and bookkeeping entries real checkpoints carry that are not parameters.
    static func isIgnorable(_ key: String) -> Bool {
        key.hasSuffix("position_ids") || key == "attn_mask" || key.hasSuffix(".attn_mask")
            || key == "input_resolution" || key == "context_length" || key == "vocab_size"
    }

    static func assemble(config: CLIPConfig, tensors: [String: CheckpointTensor], naming: Naming,
                         format: String, path: String, metadata: [String: String],
                         fileBytes: Int = .max) throws -> LoadedCheckpoint {
        let layout = config.parameterShapes
        // Bytes the parameters occupy in the files; views that repeat bytes cannot make a
        // small file into a large model.
        var storedBytes = 0
        // Validate everything before reading anything.
        var missing: [String] = []
        var used = Set<String>()
        for (name, shape) in layout {
            let count = shape.reduce(1, *)
            switch source(of: name, naming: naming) {
            case .direct(let key):
                guard let t = tensors[key] else { missing.append(key); continue }
                used.insert(key)
                // A 0-d logit_scale may be stored as [1].
                guard t.shape == shape || (shape.isEmpty && t.count == 1) else {
                    throw CLIPError(.shapeMismatch, "\(path): tensor \(key) has shape \(t.shape), expected \(shape)")
                }
                storedBytes += t.count * t.dtype.byteSize
            case .transposed(let key):
                guard let t = tensors[key] else { missing.append(key); continue }
                used.insert(key)
                guard t.shape == shape.reversed() else {
                    throw CLIPError(.shapeMismatch, "\(path): tensor \(key) has shape \(t.shape), expected \(Array(shape.reversed()))")
                }
                storedBytes += t.count * t.dtype.byteSize
            case .concat(let keys):
                var total = 0
                for key in keys {
                    guard let t = tensors[key] else { missing.append(key); continue }
                    used.insert(key)
                    let part = [shape[0] / 3] + shape.dropFirst()
                    guard t.shape == part else {
                        throw CLIPError(.shapeMismatch, "\(path): tensor \(key) has shape \(t.shape), expected \(part)")
                    }
                    total += t.count
                    storedBytes += t.count * t.dtype.byteSize
                }
                if missing.isEmpty && total != count {
                    throw CLIPError(.shapeMismatch, "\(path): \(keys) do not add up to \(shape)")
                }
            }
        }
        if !missing.isEmpty {
            let shown = missing.prefix(5).joined(separator: ", ")
            throw CLIPError(.missingTensor, "\(path): missing tensor\(missing.count > 1 ? "s" : "") \(shown)\(missing.count > 5 ? " and \(missing.count - 5) more" : "")")
        }
        let unexpected = tensors.keys.filter { !used.contains($0) && !isIgnorable($0) }.sorted()
        if !unexpected.isEmpty {
            throw CLIPError(.unexpectedTensor, "\(path): unexpected tensor\(unexpected.count > 1 ? "s" : "") \(unexpected.prefix(5).joined(separator: ", ")) (architecture differs from the config?)")
        }
        guard storedBytes <= fileBytes else {
            throw CLIPError(.corrupt, "\(path): the weights take \(storedBytes) bytes but the checkpoint holds only \(fileBytes) (tensors that repeat stored bytes?)")
        }
        let params = ParameterStore(layout: layout)
        for entry in params.entries {
            let dst = params.storage + entry.offset
            switch source(of: entry.name, naming: naming) {
            case .direct(let key):
                tensors[key]!.read(into: dst)
            case .transposed(let key):
                let t = tensors[key]!
                let src = t.floats()
                let (rows, cols) = (t.shape[0], t.shape[1])
                for r in 0..<rows { for c in 0..<cols { dst[c * rows + r] = src[r * cols + c] } }
            case .concat(let keys):
                var p = dst
                for key in keys {
                    let t = tensors[key]!
                    t.read(into: p)
                    p += t.count
                }
            }
            for i in 0..<entry.count where !dst[i].isFinite {
                throw CLIPError(.corrupt, "\(path): tensor \(entry.name) holds a non-finite value at element \(i)")
            }
        }
        return LoadedCheckpoint(config: config, parameters: params, format: format, path: path, metadata: metadata)
    }
}
