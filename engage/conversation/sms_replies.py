"""The words of our automatic SMS answers, in English and Spanish.

Every text stays in the GSM-7 alphabet (a test checks it), so one accent never
doubles the price: the Spanish is written to need no á, í, ó or ú ("ya no le
enviaremos mensajes de texto"), rather than dropping accents from words that need
them. ñ, é, ¿ and ¡ are GSM-7 and may be used. No text names a condition or treatment.

``{emergency}`` is the clinic's one emergency rule (``templates/safety/emergency-sms*.txt``), so
the answers say it in the same words as every message. ``{name}`` is the clinic's name;
``{contact}`` is ``call`` filled with the clinic's phone as people dial it (or ``no_phone``
when the clinic has none); ``{programme}`` is what the messages are and how often, word for
word as the welcome SMS (``templates/sms/welcome*.txt``) says it.
"""

from __future__ import annotations

from engage.content.safety import emergency_rule

#: What the welcome SMS and HELP both say about the programme (the CTIA "program description").
REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "clinic": "Your clinic",
        "call": "call {phone}",
        "no_phone": "call the clinic",
        "stop": "{name}: you are unsubscribed and will get no more text messages from us. Reply START to resubscribe.",
        "stop_cancel": "{name}: you are unsubscribed from text messages. Your appointments are NOT cancelled; "
        "to change one, {contact}. Reply START to resubscribe.",
        "start": "{name}: you are subscribed to text messages again. Reply HELP for help, STOP to unsubscribe.",
        # The programme description; templates/sms/welcome.txt says the same words (a test holds them equal).
        "programme": "texts about your visits, aftercare and pain check-ins. Msg frequency varies. "
        "Msg & data rates may apply.",
        "help": "{name}: {programme} For help, {contact}. Reply STOP to unsubscribe.",
        "confirm": "{name}: thank you, your appointment is confirmed.",
        "no_appointment": "{name}: we found no upcoming appointment to confirm. For questions, {contact}.",
        "reschedule": "{name}: thank you, the clinic will call you to find a new time.",
        "score": "{name}: thank you, we recorded your pain score of {score}/10.",
        # CLINICAL SIGN-OFF REQUIRED: the safety answers below ({emergency} is templates/safety/emergency-sms.txt).
        "score_high": "{name}: thank you, we recorded {score}/10 and your practitioner will review it. "
        "{emergency} For much worse pain or new numbness or weakness, {contact} today.",
        "urgent": "{name}: we have told your practitioner. {emergency} If it is not an emergency, {contact} today.",
        "ask_again": "{name}: please reply with one whole number from 0 (no pain) to 10 (worst pain).",
        "other": "{name}: we cannot answer medical questions by text; please {contact}. {emergency} "
        "Reply STOP to opt out.",
    },
    "es": {
        "clinic": "Su consultorio",
        "call": "llame al {phone}",
        "no_phone": "llame al consultorio",
        "stop": "{name}: ya no le enviaremos mensajes de texto. Para volver a recibirlos, responda START o ALTA.",
        "stop_cancel": "{name}: ya no le enviaremos mensajes de texto. Sus citas NO se han cancelado; "
        "para cambiar una, {contact}. Para volver a recibir mensajes, responda START o ALTA.",
        "start": "{name}: le volveremos a enviar mensajes de texto. Responda AYUDA para ayuda, o STOP o BAJA "
        "para darse de baja.",
        "programme": "avisos de sus citas, cuidados y dolor. La cantidad de mensajes puede variar. "
        "Pueden aplicarse tarifas de mensajes y datos.",
        "help": "{name}: {programme} Para ayuda, {contact}. Responda STOP o BAJA para darse de baja.",
        "confirm": "{name}: gracias, su cita queda confirmada.",
        "no_appointment": "{name}: no encontramos ninguna cita pendiente para confirmar. Para preguntas, {contact}.",
        "reschedule": "{name}: gracias, le llamaremos para hacer una nueva cita.",
        "score": "{name}: gracias, hemos anotado su nivel de dolor de {score}/10.",
        # CLINICAL SIGN-OFF REQUIRED: the safety answers below ({emergency} is templates/safety/emergency-sms.es.txt).
        "score_high": "{name}: anotamos {score}/10. {emergency} Si el dolor empeora mucho o nota adormecimiento "
        "o debilidad nuevos, {contact} hoy.",
        "urgent": "{name}: avisamos a su terapeuta. {emergency} Si no es una emergencia, {contact} hoy.",
        "ask_again": "{name}: por favor responda con un solo numero del 0 (sin dolor) al 10 (el peor dolor).",
        "other": "{name}: no contestamos consultas de salud por texto; {contact}. {emergency} "
        "Para darse de baja: STOP o BAJA.",
    },
}


def words_for(locale: str | None) -> dict[str, str]:
    """The answers in ``locale`` (``es``, ``es-MX``, ...), English for any other."""
    language = (locale or "en").split("-")[0].split("_")[0].lower()
    return REPLIES.get(language, REPLIES["en"])


def reply_text(locale: str | None, key: str, *, clinic_name: str | None, phone: str | None, **values: object) -> str:
    """The answer ``key`` in ``locale``, with the clinic's name and phone (as dialled) filled in."""
    words = words_for(locale)
    contact = words["call"].format(phone=phone) if phone else words["no_phone"]
    emergency = emergency_rule(locale, sms=True) if "{emergency}" in words[key] else ""
    return words[key].format(
        name=clinic_name or words["clinic"],
        contact=contact,
        programme=words["programme"],
        emergency=emergency,
        **values,
    )
