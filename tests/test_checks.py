"Self-checks: every registered question, right and wrong answers, numeric tolerance, bad ids and bad answers."
import numpy as np, pytest, torch

from segcourse.course import QUESTIONS, Feedback, add_question, ask, check, questions

@pytest.mark.parametrize('qid', list(QUESTIONS))
def test_every_question(qid):
    q = QUESTIONS[qid]
    assert q.text and q.explanation and qid.startswith(f"l{q.lesson}-")
    assert check(qid, q.answer).correct and q.explanation in check(qid, q.answer).message
    assert qid in repr(ask(qid))
    if q.numeric:
        wrong = q.answer + 2 * q.tolerance + 1
        assert check(qid, q.answer + q.tolerance * 0.99).correct and not check(qid, wrong).correct
    else:
        wrong = next(l for l in q.letters if l != q.answer)
        assert not check(qid, wrong).correct and check(qid, q.answer.upper()).correct
        assert all(f"{l}) " in repr(q) for l in q.letters)

def test_lessons_one_to_seven_have_questions():
    assert all(len(questions(l)) >= 2 for l in range(1, 8))
    assert questions(3)[0] == 'l3-accuracy'

def test_feedback_messages():
    wrong = check('l3-accuracy', 'a')
    assert isinstance(wrong, Feedback) and not wrong and 'Hint' in repr(wrong) and 'reveal=True' in repr(wrong)
    assert 'The answer is b)' in check('l3-accuracy', 'c', reveal=True).message
    assert check('l3-accuracy', 'b') and repr(check('l3-accuracy', 'b')).startswith('Correct.')

def test_numeric_answers_of_any_number_type():
    for a in (0.5, 1/2, np.float32(0.5), torch.tensor(0.5), np.int64(0) + 0.5):
        assert check('l3-dice', a).correct
    assert check('l3-dice', 0.509).correct and not check('l3-dice', 0.52).correct
    assert 'The answer is 0.5 (within 0.01)' in check('l3-dice', 0.7, reveal=True).message

@pytest.mark.parametrize('call, exc, message', [
    (lambda: check('l3-acuracy', 'b'), ValueError, "did you mean 'l3-accuracy'"),
    (lambda: ask('l99-x'), ValueError, "question_id='l99-x' is not valid"),
    (lambda: check('l3-accuracy', 'd'), ValueError, "answer='d' is not valid; choose one of ['a', 'b', 'c']"),
    (lambda: check('l3-accuracy', 2), TypeError, "must be one of the letters"),
    (lambda: check('l3-dice', 'half'), TypeError, "must be a number"),
    (lambda: check('l3-dice', True), TypeError, "must be a number"),
    (lambda: add_question('l3-accuracy', 3, '?', 'a', '', options=('x', 'y')), ValueError, "already registered"),
    (lambda: add_question('l3-new', 3, '?', 'a', '', options=('x',)), ValueError, "at least 2 choices"),
    (lambda: add_question('l3-new', 3, '?', 1.0, '', tolerance=-1), ValueError, "tolerance must be >= 0"),
])
def test_errors(call, exc, message):
    with pytest.raises(exc) as e: call()
    assert message in str(e.value)

def test_add_and_replace():
    try:
        add_question('l8-test-x', 8, 'How many?', 3, 'Three.', tolerance=0)
        assert check('l8-test-x', 3).correct and not check('l8-test-x', 3.1).correct
        add_question('l8-test-x', 8, 'Which?', 'a', 'A.', options=('x', 'y'), replace=True)
        assert check('l8-test-x', 'a').correct and 'l8-test-x' in questions(8)
    finally: QUESTIONS.pop('l8-test-x', None)
