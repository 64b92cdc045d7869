/** A URL fit for a log line or a probe's answer: user and password removed, so a credential in it never shows. */
export function urlWithoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.href.replace(/\/+$/, '');
  } catch {
    return '(not a URL)';
  }
}
