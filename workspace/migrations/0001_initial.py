"""Account grants (docs/design.md section 16): which users and groups see which accounts. The
permission to write them (``manage_account_grants``) is given to no group: a superuser grants it
to whoever manages access."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AccountGrant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('account', models.CharField(db_index=True, help_text="The account's name (ACCOUNTS_FILE).", max_length=32)),
                ('created_by', models.CharField(blank=True, help_text='Who made the grant.', max_length=150)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('group', models.ForeignKey(blank=True, help_text='Every member of this group may see the account (or give a user instead).', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='account_grants', to='auth.group')),
                ('user', models.ForeignKey(blank=True, help_text='The user who may see the account (or give a group instead).', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='account_grants', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['account', 'id'],
                'permissions': [('manage_account_grants', 'Can grant accounts to users and groups')],
                'default_permissions': ('view',),
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('group__isnull', False), ('user__isnull', True)), _connector='OR'), name='account_grant_user_or_group', violation_error_message='Grant the account to a user or to a group (one of them).'), models.UniqueConstraint(condition=models.Q(('user__isnull', False)), fields=('account', 'user'), name='account_grant_once_per_user', violation_error_message='This user is granted this account already.'), models.UniqueConstraint(condition=models.Q(('group__isnull', False)), fields=('account', 'group'), name='account_grant_once_per_group', violation_error_message='This group is granted this account already.')],
            },
        ),
    ]
