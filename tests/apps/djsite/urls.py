from django.contrib import admin
from django.http import JsonResponse
from django.urls import path


def whoami(request):
    return JsonResponse({"remote_addr": request.META["REMOTE_ADDR"], "secure": request.is_secure(),
                         "user": request.user.get_username()})


urlpatterns = [path("admin/", admin.site.urls), path("whoami", whoami)]
