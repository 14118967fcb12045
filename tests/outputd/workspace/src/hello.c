#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argv;
	printf("hello from casfs-outputd's gcc-built test program (argc=%d)\n", argc);
	return 0;
}
