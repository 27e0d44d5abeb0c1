"""`cadenza sequences` share / clone / move / folders / rename-folder / list filters, as
two members would use them; on both databases."""

from cadenza.services.accounts import users


def test_sharing_cloning_and_folders_from_the_command_line(cli, ctx, world):
    rep = world.user.email
    olive = users.create_user(ctx, "olive@example.com").email
    seq = world.make_sequence(name="Playbook").id
    assert "now private" in cli("sequences", "share", seq, "private", "--as", rep)
    assert "Playbook" not in cli("sequences", "list", "--as", olive)
    assert "sequence_not_found" in cli("sequences", "show", seq, "--as", olive, ok=False)
    assert "sequence_not_found" in cli("sequences", "clone", seq, "--as", olive, ok=False)

    shared = cli("sequences", "share", seq, "team_use", "--template", "--as", rep)
    assert "team_use (sequence template)" in shared
    assert "Playbook (template)" in cli("sequences", "list", "--templates", "--as", olive)
    assert "permission_denied" in cli("sequences", "move", seq, "Q3", "--as", olive, ok=False)
    assert "permission_denied" in cli("sequences", "share", seq, "private", "--as", olive,
                                      ok=False)  # fmt: skip
    cloned = cli("sequences", "clone", seq, "--name", "Olive copy", "--folder", "Mine",
                 "--as", olive)  # fmt: skip
    assert "Olive copy (private)" in cloned
    assert "Olive copy" in cli("sequences", "list", "--folder", "Mine", "--as", olive)
    assert "Olive copy" not in cli("sequences", "list", "--as", rep)

    assert "folder Q3" in cli("sequences", "move", seq, "Q3", "--as", rep)
    assert "Q3" in cli("sequences", "folders", "--as", rep)
    assert "on 1 sequence" in cli("sequences", "rename-folder", "Q3", "Q4", "--as", rep)
    listed = cli("sequences", "list", "--folder", "Q4", "--as", rep)
    assert "Playbook" in listed and "Follow-up" not in listed
    assert "validation_error" in cli("sequences", "move", seq, "a/b", "--as", rep, ok=False)
    cli("sequences", "archive", seq, "--as", rep)
    assert "Playbook" in cli("sequences", "list", "--archived", "--folder", "Q4", "--as", rep)
