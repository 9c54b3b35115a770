import CLIP
import Foundation
import Tensor

/// Draws training batches: a shuffled pass over the pairs, without two identical captions in
/// one batch (a duplicate would be a false negative for the contrastive loss).
struct BatchSampler {
    let captions: [[Int32]]
    var order: [Int]
    var cursor = 0
    var rng: SeededGenerator

    init(captions: [[Int32]], seed: UInt64) {
        self.captions = captions
        rng = SeededGenerator(seed: seed)
        order = Array(captions.indices).shuffled(using: &rng)
    }

    mutating func next(max size: Int) -> [Int] {
        var chosen: [Int] = [], seen = Set<[Int32]>()
        var visited = 0
        while chosen.count < size && visited < order.count {
            if cursor == order.count { order.shuffle(using: &rng); cursor = 0 }
            let i = order[cursor]
            cursor += 1
            visited += 1
            if seen.insert(captions[i]).inserted { chosen.append(i) }
        }
        return chosen
    }
}
