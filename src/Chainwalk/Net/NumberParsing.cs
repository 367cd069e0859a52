using System.Globalization;

namespace Chainwalk.Net;

/// <summary>Number parsing with C's strtoul rules, as libxtables uses them (base 0: 0x hex, leading-0 octal).</summary>
public static class NumberParsing
{
    /// <summary>
    /// Parses <paramref name="text"/> like <c>strtoull(s, &amp;end, base)</c> and returns how many characters were
    /// consumed (0 when none). Leading white space and one sign are accepted as strtoull does; a '-' negates
    /// modulo 2^64.
    /// </summary>
    public static int ParseCPrefix(ReadOnlySpan<char> text, int numberBase, out ulong value, out bool overflow)
    {
        value = 0;
        overflow = false;
        int i = 0;
        while (i < text.Length && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r'))) i++;
        bool negative = false;
        if (i < text.Length && (text[i] == '+' || text[i] == '-'))
        {
            negative = text[i] == '-';
            i++;
        }
        int b = numberBase;
        int start = i;
        if ((b == 0 || b == 16) && i + 1 < text.Length && text[i] == '0' && (text[i + 1] == 'x' || text[i + 1] == 'X')
            && i + 2 < text.Length && Uri.IsHexDigit(text[i + 2]))
        {
            i += 2;
            b = 16;
        }
        else if (b == 0)
        {
            b = i < text.Length && text[i] == '0' ? 8 : 10;
        }
        int digitsStart = i;
        ulong acc = 0;
        while (i < text.Length)
        {
            int d = DigitValue(text[i]);
            if (d < 0 || d >= b) break;
            ulong next = unchecked(acc * (ulong)b + (ulong)d);
            if (acc > (ulong.MaxValue - (ulong)d) / (ulong)b) overflow = true;
            acc = next;
            i++;
        }
        if (i == digitsStart)
        {
            // "0x" with no hex digits parses the "0" only; a bare sign parses nothing.
            if (b == 16 && digitsStart == start + 2) { value = 0; return start + 1; }
            return 0;
        }
        if (overflow) acc = ulong.MaxValue;
        value = negative && !overflow ? unchecked(0 - acc) : acc;
        return i;
    }

    private static int DigitValue(char c)
    {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'z') return c - 'a' + 10;
        if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
        return -1;
    }

    /// <summary>xtables_strtoul(s, NULL, &amp;v, min, max) with base 0: the whole string must be a number in range.</summary>
    public static bool TryParseCUnsigned(ReadOnlySpan<char> text, ulong max, out ulong value, ulong min = 0, int numberBase = 0)
    {
        int used = ParseCPrefix(text, numberBase, out value, out bool overflow);
        if (used == 0 || used != text.Length || overflow) return false;
        return value >= min && value <= max;
    }

    /// <summary>Decimal text of an unsigned value.</summary>
    public static string Dec(ulong v) => v.ToString(CultureInfo.InvariantCulture);

    public static string Dec(long v) => v.ToString(CultureInfo.InvariantCulture);

    public static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);
}
