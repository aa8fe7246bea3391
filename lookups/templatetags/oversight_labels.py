"""Template filters turning audit codes into labels in the active language."""

from django import template

from ..oversight import labels

register = template.Library()

register.filter("action_label", labels.action_label)
register.filter("outcome_label", labels.outcome_label)
register.filter("notice_kind_label", labels.notice_kind_label)
