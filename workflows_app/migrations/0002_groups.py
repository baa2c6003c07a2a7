"""The three operator groups: viewers, operators (start/resume/rehydrate/cancel) and
approvers (answer requests). Each group can view everything."""

from django.db import migrations

VIEW = ["view_workflow", "view_run", "view_checkpoint", "view_pendingrequest", "view_runevent"]
GROUPS = {
    "viewers": VIEW,
    "operators": VIEW + ["operate_run"],
    "approvers": VIEW + ["answer_request"],
}


def create_groups(apps, schema_editor):
    if schema_editor.connection.alias != "default":
        return  # the channel layer's database holds no users
    # Permissions are normally created after all migrations ran; create them now.
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("workflows_app")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(Permission.objects.filter(
            content_type__app_label="workflows_app", codename__in=codenames))


def remove_groups(apps, schema_editor):
    if schema_editor.connection.alias != "default":
        return
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workflows_app", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
