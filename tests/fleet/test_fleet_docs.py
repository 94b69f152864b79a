"""docs/deployment.md shows the configurations the fleet test runs, character for character."""

from support.paths import REPO


def test_the_deployment_guide_shows_the_tested_configuration_files():
    guide = (REPO / "docs" / "deployment.md").read_text()
    for name, language in (("haproxy.cfg", "haproxy"), ("nginx-upstream.conf", "nginx")):
        text = (REPO / "conf" / name).read_text()
        assert f"```{language}\n{text}```" in guide, f"docs/deployment.md: conf/{name} differs; copy it again"
