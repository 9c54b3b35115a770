/// The eight EXIF orientations as maps from upright (displayed) pixel coordinates to stored
/// ones, matching Pillow's `ImageOps.exif_transpose`.
struct Orientation {
    let value: Int          // 1...8
    let storedWidth: Int
    let storedHeight: Int

    var swapsAxes: Bool { value >= 5 }
    var uprightWidth: Int { swapsAxes ? storedHeight : storedWidth }
    var uprightHeight: Int { swapsAxes ? storedWidth : storedHeight }

    /// Stored pixel shown at upright (x, y).
    func stored(_ x: Int, _ y: Int) -> (x: Int, y: Int) {
        let w = storedWidth, h = storedHeight
        switch value {
        case 2: return (w - 1 - x, y)            // mirror
        case 3: return (w - 1 - x, h - 1 - y)    // rotate 180
        case 4: return (x, h - 1 - y)            // flip
        case 5: return (y, x)                    // transpose
        case 6: return (y, h - 1 - x)            // rotate 90 clockwise
        case 7: return (w - 1 - y, h - 1 - x)    // transverse
        case 8: return (w - 1 - y, x)            // rotate 90 counter-clockwise
        default: return (x, y)
        }
    }

    /// Upright pixel that shows stored (x, y) (the inverse map).
    func upright(_ x: Int, _ y: Int) -> (x: Int, y: Int) {
        let w = storedWidth, h = storedHeight
        switch value {
        case 2: return (w - 1 - x, y)
        case 3: return (w - 1 - x, h - 1 - y)
        case 4: return (x, h - 1 - y)
        case 5: return (y, x)
        case 6: return (h - 1 - y, x)
        case 7: return (h - 1 - y, w - 1 - x)
        case 8: return (y, w - 1 - x)
        default: return (x, y)
        }
    }

    /// The stored rectangle holding the upright rectangle (a bijection: same pixel count).
    func storedRect(columns: Range<Int>, rows: Range<Int>) -> (x: Int, y: Int, width: Int, height: Int) {
        let a = stored(columns.lowerBound, rows.lowerBound)
        let b = stored(columns.upperBound - 1, rows.upperBound - 1)
        return (min(a.x, b.x), min(a.y, b.y), abs(a.x - b.x) + 1, abs(a.y - b.y) + 1)
    }

    /// The upright rectangle shown by a stored rectangle.
    func uprightRect(x: Int, y: Int, width: Int, height: Int) -> (x: Int, y: Int, width: Int, height: Int) {
        let a = upright(x, y)
        let b = upright(x + width - 1, y + height - 1)
        return (min(a.x, b.x), min(a.y, b.y), abs(a.x - b.x) + 1, abs(a.y - b.y) + 1)
    }
}
