"""Forms of the staff workspace. Validation mirrors the services (which check again).

Forms never write: views pass cleaned data to ``guardians.services`` / ``lookups.services``.
Fields are large and labelled in plain words; a failed submit re-renders every value typed
(file inputs excepted, which browsers cannot refill). One module per topic; every name is
re-exported here.
"""

from .authorizations import (  # noqa: F401
    MAX_AUTHORIZATION_YEARS,
    AuthorizationEndForm,
    AuthorizationForm,
    AuthorizationRenewForm,
    end_of_day_after,
)
from .common import DATE_INPUT, DATETIME_INPUT  # noqa: F401
from .enrollment import (  # noqa: F401
    DEFAULT_FACE_CONSENT_TEXT,
    FaceConsentForm,
    FaceEnrollForm,
    MultipleFileInput,
    MultipleImageField,
    TotpConfirmForm,
)
from .people import (  # noqa: F401
    AccountCreateForm,
    ElderRegisterForm,
    GuardianRegisterForm,
    PersonRegisterForm,
    SearchForm,
)
from .results import (  # noqa: F401
    SAMPLING_PHOTO_FORMATS,
    PhotoReasonForm,
    ResultForm,
    ResultsImportConfirmForm,
    ResultsImportForm,
)
from .sign_in import (  # noqa: F401
    AdminLoginForm,
    ReverifyForm,
    StaffLoginForm,
    _CodeInput,
    _dummy_totp_verify,
)
