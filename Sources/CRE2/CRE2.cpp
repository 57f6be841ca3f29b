#include "CRE2.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <re2/re2.h>

struct meshgate_re2 {
    re2::RE2 regex;
    explicit meshgate_re2(re2::StringPiece pattern) : regex(pattern, re2::RE2::Quiet) {}
};

static char *copy_message(const std::string &message) {
    char *copy = static_cast<char *>(std::malloc(message.size() + 1));
    if (copy != nullptr) {
        std::memcpy(copy, message.data(), message.size());
        copy[message.size()] = '\0';
    }
    return copy;
}

extern "C" meshgate_re2 *meshgate_re2_compile(const char *pattern, size_t length, char **error) {
    if (error != nullptr) {
        *error = nullptr;
    }
    meshgate_re2 *compiled = nullptr;
    try {
        compiled = new meshgate_re2(re2::StringPiece(pattern, length));
    } catch (...) {
        if (error != nullptr) {
            *error = copy_message("out of memory compiling the regex");
        }
        return nullptr;
    }
    if (!compiled->regex.ok()) {
        if (error != nullptr) {
            *error = copy_message(compiled->regex.error());
        }
        delete compiled;
        return nullptr;
    }
    return compiled;
}

extern "C" int meshgate_re2_program_size(const meshgate_re2 *re) {
    return re->regex.ProgramSize();
}

extern "C" int meshgate_re2_full_match(const meshgate_re2 *re, const char *subject, size_t length) {
    // RE2 never throws while matching; it falls back from the DFA to the NFA when its memory budget
    // runs out, so the time stays linear in the subject either way.
    re2::StringPiece text(subject == nullptr ? "" : subject, subject == nullptr ? 0 : length);
    return re2::RE2::FullMatch(text, re->regex) ? 1 : 0;
}

extern "C" int meshgate_re2_check_rewrite(const meshgate_re2 *re, const char *rewrite, size_t length, char **error) {
    if (error != nullptr) {
        *error = nullptr;
    }
    std::string message;
    if (re->regex.CheckRewriteString(re2::StringPiece(rewrite, length), &message)) {
        return 1;
    }
    if (error != nullptr) {
        *error = copy_message(message);
    }
    return 0;
}

extern "C" char *meshgate_re2_global_replace(const meshgate_re2 *re, const char *subject, size_t length, const char *rewrite,
                                             size_t rewrite_length, size_t *result_length) {
    try {
        std::string text(subject == nullptr ? "" : subject, subject == nullptr ? 0 : length);
        re2::RE2::GlobalReplace(&text, re->regex, re2::StringPiece(rewrite, rewrite_length));
        *result_length = text.size();
        return copy_message(text);
    } catch (...) {
        return nullptr;
    }
}

extern "C" void meshgate_re2_free(meshgate_re2 *re) {
    delete re;
}

extern "C" void meshgate_re2_free_error(char *error) {
    std::free(error);
}
