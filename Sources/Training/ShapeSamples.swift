import Foundation
import Synthetic
import Tensor

/// The sample records of the shape scenes (`clipd synth`): which scenes and variants, their
/// file names and record JSON (what `Deploy/demo/samples/records.jsonl` holds).
public enum ShapeSamples {
    public enum Split: String, Sendable, CaseIterable { case train, heldout, all }

    /// The scenes and variants of a split, in a fixed order; with `sample`, every k-th of them.
    public static func entries(split: Split, variants: Int, sample: Int?) -> [(scene: ShapeScene, variant: UInt64)] {
        let scenes = ShapeScene.all.filter {
            switch split {
            case .train: !$0.isHeldOut
            case .heldout: $0.isHeldOut
            case .all: true
            }
        }
        var all: [(ShapeScene, UInt64)] = []
        for scene in scenes { for v in 0..<variants { all.append((scene, UInt64(v))) } }
        guard let sample, sample < all.count else { return all }
        // A seeded shuffle mixes shapes, colours, sizes and positions (evenly spaced picks
        // would follow the scene order's periods); the picks keep the scene order.
        var rng = SeededGenerator(seed: 42)
        let picked = Array(all.indices).shuffled(using: &rng).prefix(sample).sorted()
        return picked.map { all[$0] }
    }

    /// `<colour>-<shape>-<size>-<position>-<variant>.jpg`
    public static func fileName(_ scene: ShapeScene, variant: UInt64) -> String {
        "\(scene.colour.rawValue)-\(scene.shape.rawValue)-\(scene.size.rawValue)-\(scene.position.rawValue)-\(variant).jpg"
    }

    /// The record of one rendered scene: id, image URL, caption and the scene as metadata.
    public static func recordJSON(_ scene: ShapeScene, variant: UInt64, imageURL: String) throws -> String {
        let record: [String: Any] = [
            "id": "shape-" + fileName(scene, variant: variant).dropLast(4),
            "image_url": imageURL,
            "caption": scene.caption,
            "metadata": ["colour": scene.colour.rawValue, "shape": scene.shape.rawValue, "size": scene.size.rawValue,
                         "position": scene.position.rawValue, "variant": variant, "held_out": scene.isHeldOut] as [String: Any],
        ]
        let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
