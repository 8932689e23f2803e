"""The importer's balanced layout against an independent model of Kubo's builder."""

from __future__ import annotations

import pytest

from hygieia.ipfs import CID, DAG_PB, MAX_LINKS, RAW, FileImporter, decode_dag_pb

Tree = list["Tree"] | None  # an inner node is its children; a leaf is None


def kubo_balanced(chunks: int, max_links: int) -> Tree:
    """go-unixfs ``balanced.Layout``, ported as is (top-down): the root grows one
    level at a time, the old root becoming the first child of the new one."""
    remaining = [chunks]

    def fill(node: list[Tree], depth: int) -> None:
        while len(node) < max_links and remaining[0] > 0:
            if depth == 1:
                remaining[0] -= 1
                node.append(None)
            else:
                child: list[Tree] = []
                fill(child, depth - 1)
                node.append(child)

    remaining[0] -= 1
    root: Tree = None
    depth = 1
    while remaining[0] > 0:
        new_root: list[Tree] = [root]
        fill(new_root, depth)
        root, depth = new_root, depth + 1
    return root


def importer_tree(chunks: int, max_links: int) -> tuple[Tree, CID]:
    blocks: dict[CID, bytes] = {}
    importer = FileImporter(blocks.__setitem__, chunk_size=4, max_links=max_links)
    for i in range(chunks):
        importer.write(i.to_bytes(4, "big"))  # distinct leaves
    root = importer.finish()

    def tree(cid: CID) -> Tree:
        if cid.codec == RAW:
            return None
        return [tree(c) for c in decode_dag_pb(blocks[cid]).links]

    return tree(root), root


@pytest.mark.parametrize("max_links", [2, 3, 4, 174])
@pytest.mark.parametrize("chunks", [0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 27, 28, 64, 65, 175, 1000])
def test_tree_has_kubos_shape(chunks: int, max_links: int) -> None:
    tree, root = importer_tree(chunks, max_links)
    assert tree == kubo_balanced(max(chunks, 1), max_links)
    assert root.codec == (RAW if chunks <= 1 else DAG_PB)


def test_1024_link_boundary() -> None:
    tree, _ = importer_tree(MAX_LINKS, MAX_LINKS)
    assert tree == [None] * MAX_LINKS  # exactly 1024 chunks: one node, no extra level
    tree, _ = importer_tree(MAX_LINKS + 1, MAX_LINKS)
    assert tree == [[None] * MAX_LINKS, [None]]
    assert tree == kubo_balanced(MAX_LINKS + 1, MAX_LINKS)


def test_inner_node_bytes() -> None:
    """blocksizes, filesize, empty link names and Tsize, as Kubo writes them."""
    blocks: dict[CID, bytes] = {}
    importer = FileImporter(lambda c, b: blocks.__setitem__(c, b), chunk_size=3)
    importer.write(b"abcdefg")
    root = importer.finish()
    node = blocks[root]
    leaves = [CID.for_block(RAW, x) for x in (b"abc", b"def", b"g")]
    link = b"".join(
        b"\x12" + bytes([2 + 36 + 2 + 2]) + b"\x0a\x24" + c.binary + b"\x12\x00\x18" + bytes([n])
        for c, n in zip(leaves, (3, 3, 1), strict=True)
    )
    unixfs = b"\x08\x02\x18\x07\x20\x03\x20\x03\x20\x01"
    assert node == link + b"\x0a" + bytes([len(unixfs)]) + unixfs


def _import(pieces: list[bytes | bytearray | memoryview], chunk_size: int) -> tuple[CID, list]:
    blocks: list[tuple[CID, bytes]] = []
    importer = FileImporter(lambda c, b: blocks.append((c, b)), chunk_size=chunk_size)
    for piece in pieces:
        importer.write(piece)
    return importer.finish(), blocks


@pytest.mark.parametrize("sizes", [[1], [7], [10], [3, 3, 3, 3, 3], [16, 1, 15, 2], [64]])
def test_leaves_do_not_depend_on_write_sizes(sizes: list[int]) -> None:
    data = bytes(range(64))
    pieces, at = [], 0
    while at < len(data):
        for n in sizes:
            pieces.append(data[at : at + n])
            at += n
    expected = _import([data], 10)
    assert _import([p for p in pieces if p], 10) == expected
    assert [len(b) for c, b in expected[1] if c.codec == RAW] == [10] * 6 + [4]


def test_mutable_input_may_be_reused_after_write() -> None:
    """A caller's bytearray or memoryview is copied, not held: reusing it is safe."""
    data = bytes(range(40))
    expected = _import([data], 16)
    blocks: list[tuple[CID, bytes]] = []
    importer = FileImporter(lambda c, b: blocks.append((c, b)), chunk_size=16)
    buf = bytearray(5)
    for at in range(0, 40, 5):
        buf[:] = data[at : at + 5]
        importer.write(memoryview(buf) if at % 10 else buf)
    buf[:] = b"\xff" * 5  # scribble over the last piece before the final leaf is made
    assert (importer.finish(), blocks) == expected
