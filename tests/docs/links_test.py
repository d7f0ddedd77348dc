#!/usr/bin/python3
"""The documentation stays inside the repository: every relative link in README.md and docs/
names a file that exists in the repository, nothing points outside it (e.g. ../shared), and the
README still opens with its two commands.

usage: links_test.py REPO_ROOT
"""
import glob
import os
import re
import sys
import unittest

ROOT = ""


def documents():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


class LinksTest(unittest.TestCase):
    def test_relative_links_resolve_inside_the_repository(self):
        checked = 0
        for doc in documents():
            with open(doc, encoding="utf-8") as f:
                text = f.read()
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
                if re.match(r"[a-z]+:", target):
                    continue
                path = os.path.realpath(os.path.join(os.path.dirname(doc), target))
                self.assertTrue(path.startswith(os.path.realpath(ROOT) + os.sep),
                                f"{doc}: {target} points outside the repository")
                self.assertTrue(os.path.exists(path), f"{doc}: {target} does not exist")
                checked += 1
        self.assertGreater(checked, 3)

    def test_nothing_names_the_shared_folder(self):
        for doc in documents():
            with open(doc, encoding="utf-8") as f:
                self.assertNotIn("../shared", f.read(), doc)

    def test_readme_opens_with_the_two_commands(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            head = f.read().split("\n")[:8]
        self.assertEqual(head[0], "# rbdcsi")
        self.assertTrue(any(line.startswith("scripts/run.sh") for line in head), head)
        self.assertTrue(any(line.startswith("scripts/test.sh") for line in head), head)

    def test_docs_cover_what_operators_need(self):
        with open(os.path.join(ROOT, "docs", "unstage.md"), encoding="utf-8") as f:
            unstage = f.read()
        for heading in ("## Decisions when the device is busy", "## Holder kinds",
                        "## Troubleshooting a stuck volume"):
            self.assertIn(heading, unstage)
        for tool in ("rbdcsi holders", "rbdcsi doctor", "rbdcsi_busy_volumes"):
            self.assertIn(tool, unstage)


if __name__ == "__main__":
    ROOT = sys.argv[1]
    unittest.main(argv=sys.argv[:1], verbosity=2)
