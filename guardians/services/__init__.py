"""Writes about who may act for whom. Every function audits in the same transaction.

Callers (views, admin, commands) pass the acting ``Actor`` explicitly. Authorization state
changes lock the row (``select_for_update`` inside ``atomic``) and refuse illegal starting
states, so two staff members acting at once cannot both succeed.
"""

from .accounts import account_password_set, person_create_login, set_password_link_issue  # noqa: F401
from .authorizations import (  # noqa: F401
    _authorization_end,
    _locked_authorization,
    authorization_approve,
    authorization_check_request,
    authorization_create,
    authorization_removal_request,
    authorization_renew,
    authorization_revoke,
    authorization_suspend,
)
from .common import (  # noqa: F401
    BACKUP_CODE_COUNT,
    BACKUP_CODE_DIGITS,
    FACE_CONSENT_VALID_MINUTES,
    REMOVAL_REQUEST_ACTION,
    DuplicatePerson,
    IllegalState,
    NotPermitted,
    ServiceError,
    _login_of,
    require_staff_can,
)
from .face_enrollment import (  # noqa: F401
    face_cohort_of,
    face_consent_pending,
    face_consent_record,
    face_enroll,
    face_enroll_with_consent,
    face_enrollment_withdraw,
    face_samples_from_images,
    face_template_of,
)
from .otp_devices import (  # noqa: F401
    backup_codes_issue,
    otp_enrollment_confirm,
    otp_enrollment_start,
    staff_otp_reverify,
    totp_device_confirm,
    totp_device_create,
    totp_device_save_from_admin,
)
from .people import (  # noqa: F401
    id_number_check_birth_date,
    identity_check_record,
    person_check_not_registered,
    person_find_by_id_number,
    person_register,
    person_register_in_person,
    staff_member_add,
    staff_sign_in_record,
    user_preferences_update,
)
